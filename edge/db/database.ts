import type { LibSQLDatabase } from "drizzle-orm/libsql/driver-core";
import type * as schema from "./schema.js";

// The app receives a ready drizzle database: each entry point builds it over its own libSQL client
// (`drizzle-orm/libsql` + `@libsql/client` on Node, `drizzle-orm/libsql/web` + `@libsql/client/web` on Workers)
// with `{ schema }` from ./schema.js.

export type Database = LibSQLDatabase<typeof schema>;
