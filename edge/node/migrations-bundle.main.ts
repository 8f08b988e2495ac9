// `npm run db:generate` step 2: writes migrations/index.ts from the folder drizzle-kit just updated.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { MIGRATIONS_DIR, readMigrationsFolder, renderMigrationsModule } from "./migrations.fs.js";

const migrations = readMigrationsFolder();
writeFileSync(join(MIGRATIONS_DIR, "index.ts"), renderMigrationsModule(migrations));
console.log(`migrations/index.ts: ${migrations.length} migration(s): ${migrations.map((m) => m.tag).join(", ")}`);
