/** The time source; injected so tests and the Workers edge control it. */
export interface Clock {
  now(): Date;
}
