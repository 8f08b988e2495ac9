import { defineConfig } from "drizzle-kit";

// `npm run db:generate` runs drizzle-kit with this, then writes migrations/index.ts (the same SQL as strings,
// for the Workers edge, which cannot read files). Tables live in edge/db/schema.ts or edge/db/*.schema.ts.
export default defineConfig({
  dialect: "turso",
  schema: ["./edge/db/schema.ts", "./edge/db/*.schema.ts"],
  out: "./migrations",
});
