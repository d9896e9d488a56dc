/**
 * The signals area (in progress).
 *
 * @module
 */
export {};
