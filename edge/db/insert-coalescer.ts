// Group commit for inserts arriving together. Every SQLite commit writes each B-tree page it touched: a lone
// task insert dirties ~5 pages (table, primary key, two indexes) = ~20 KB of WAL for a ~300-byte row. Rows
// inserted by concurrent requests in the same event-loop turn share one multi-row INSERT (one commit, mostly
// the same pages), so under load the WAL traffic per task drops several-fold. Each caller's promise settles
// only once its own row is committed; a failing batch is retried row by row, so one bad row fails alone.

export type Schedule = (flush: () => void) => void;

// setImmediate runs after the I/O callbacks of the current turn, i.e. after every request that arrived with
// this one has reached its insert. Workers have no setImmediate; a zero timeout does the same job there.
const defaultSchedule: Schedule = (flush) => {
  if (typeof setImmediate === "function") setImmediate(flush);
  else setTimeout(flush, 0);
};

interface Pending<Row> {
  row: Row;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class InsertCoalescer<Row> {
  readonly #insertOne: (row: Row) => Promise<unknown>;
  readonly #insertMany: (rows: Row[]) => Promise<unknown>;
  readonly #maxBatch: number;
  readonly #schedule: Schedule;
  #pending: Pending<Row>[] = [];
  #scheduled = false;

  constructor(options: {
    insertOne: (row: Row) => Promise<unknown>;
    insertMany: (rows: Row[]) => Promise<unknown>;
    /** Bounds the statement's bound parameters (rows x columns) well under SQLite's limit. */
    maxBatch?: number;
    schedule?: Schedule;
  }) {
    this.#insertOne = options.insertOne;
    this.#insertMany = options.insertMany;
    this.#maxBatch = options.maxBatch ?? 200;
    this.#schedule = options.schedule ?? defaultSchedule;
  }

  insert(row: Row): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ row, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        this.#schedule(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    const pending = this.#pending;
    this.#pending = [];
    for (let i = 0; i < pending.length; i += this.#maxBatch) {
      await this.#commit(pending.slice(i, i + this.#maxBatch));
    }
  }

  async #commit(batch: Pending<Row>[]): Promise<void> {
    if (batch.length > 1) {
      try {
        await this.#insertMany(batch.map((p) => p.row));
        for (const p of batch) p.resolve();
        return;
      } catch {
        // Fall through: find the failing row(s) one by one.
      }
    }
    for (const p of batch) {
      try {
        await this.#insertOne(p.row);
        p.resolve();
      } catch (err) {
        p.reject(err);
      }
    }
  }
}
