// Throw-away copies of models/tiny-sd (symlinked files, copied top-level JSON) for tests that break a model.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TINY_SD_DIR } from "./goldens.js";

/** A fresh directory mirroring tiny-sd; `edit` may then remove or replace entries. Delete it when done. */
export function tinyModelCopy(edit: (dir: string) => void = () => {}): string {
  const dir = mkdtempSync(join(tmpdir(), "tiny-sd-"));
  for (const entry of readdirSync(TINY_SD_DIR, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      mkdirSync(join(dir, entry.name));
      for (const file of readdirSync(join(TINY_SD_DIR, entry.name))) {
        symlinkSync(join(TINY_SD_DIR, entry.name, file), join(dir, entry.name, file));
      }
    } else {
      cpSync(join(TINY_SD_DIR, entry.name), join(dir, entry.name));
    }
  }
  edit(dir);
  return dir;
}
