/**
 * The http area (in progress).
 *
 * @module
 */
export {};
