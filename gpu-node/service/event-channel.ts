// One subscriber's view of a task's events: an async iterator fed by the job queue. Unbounded on purpose: a
// task emits a few hundred small events at most, and the job must never wait for a slow client.

export class EventChannel<T> implements AsyncIterableIterator<T> {
  private readonly buffer: T[] = [];
  private pending: ((result: IteratorResult<T>) => void) | null = null;
  private ended = false;

  /** `onDetach` runs once when the consumer stops early (break, return(), a dropped connection). */
  constructor(private readonly onDetach: () => void = () => {}) {}

  push(value: T): void {
    if (this.ended) return;
    if (this.pending) {
      const resolve = this.pending;
      this.pending = null;
      resolve({ value, done: false });
      return;
    }
    this.buffer.push(value);
  }

  /** No more values; what is buffered is still delivered. */
  end(): void {
    this.ended = true;
    if (this.pending && this.buffer.length === 0) {
      const resolve = this.pending;
      this.pending = null;
      resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) return Promise.resolve({ value: this.buffer.shift() as T, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.pending = resolve;
    });
  }

  return(): Promise<IteratorResult<T>> {
    if (!this.ended) this.onDetach();
    this.buffer.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
