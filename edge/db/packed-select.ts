import { sql, type Column, type GetColumnData, type SQL } from "drizzle-orm";

// @libsql/client builds every result row column by column with Object.defineProperty and asks the native
// statement for its column list twice per query: a 29-column row costs ~10x a 1-column one. Hot reads
// therefore select their columns packed into one JSON array (json_array, built by SQLite) and unpack it here
// with each column's own drizzle mapping, so the types still flow from the schema.

export type PackedColumns = Record<string, Column>;
export type UnpackedRow<C extends PackedColumns> = { [K in keyof C]: GetColumnData<C[K]> };

export interface PackedSelect<C extends PackedColumns> {
  /** The SQL expression to select: one text value. */
  expression: SQL<string>;
  unpack(packed: string): UnpackedRow<C>;
}

export function packColumns<C extends PackedColumns>(columns: C): PackedSelect<C> {
  const entries = Object.entries(columns);
  const expression = sql<string>`json_array(${sql.join(
    entries.map(([, column]) => column),
    sql`, `,
  )})`;
  const unpack = (packed: string): UnpackedRow<C> => {
    const values = JSON.parse(packed) as unknown[];
    const row: Record<string, unknown> = {};
    for (let i = 0; i < entries.length; i++) {
      const [name, column] = entries[i];
      const value = values[i];
      row[name] = value === null ? null : column.mapFromDriverValue(value);
    }
    return row as UnpackedRow<C>;
  };
  return { expression, unpack };
}
