/**
 * The channels area (in progress).
 *
 * @module
 */
export {};
