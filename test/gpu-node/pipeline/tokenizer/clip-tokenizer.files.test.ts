import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { readClipTokenizerFiles } from "../../../../gpu-node/pipeline/tokenizer/clip-tokenizer.files.js";
import { ClipTokenizer } from "../../../../gpu-node/pipeline/tokenizer/clip.tokenizer.js";

const modelDir = fileURLToPath(new URL("../../../../models/tiny-sd/tokenizer", import.meta.url));
const tempDirs: string[] = [];
function tempDir(files: Record<string, string | "copy"> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "clip-files-"));
  tempDirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    if (content === "copy") copyFileSync(join(modelDir, name), join(dir, name));
    else writeFileSync(join(dir, name), content);
  }
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe("readClipTokenizerFiles", () => {
  it("reads the model's files: 49408 symbols, 48894 merges, CLIP's special tokens", () => {
    const files = readClipTokenizerFiles(modelDir);
    expect(files.vocab.size).toBe(49408);
    expect(files.merges).toHaveLength(48894);
    expect(files.merges[0]).toEqual(["i", "n"]);
    expect([files.bosToken, files.eosToken, files.padToken, files.maxLength]).toEqual([
      "<|startoftext|>",
      "<|endoftext|>",
      "<|endoftext|>",
      77,
    ]);
  });

  it("names both slow files when a directory has no tokenizer at all", () => {
    const dir = tempDir();
    expect(() => ClipTokenizer.fromDirectory(dir)).toThrow(/vocab\.json and .*merges\.txt not found/);
  });

  it("names the missing half of vocab.json + merges.txt", () => {
    expect(() => ClipTokenizer.fromDirectory(tempDir({ "vocab.json": "copy" }))).toThrow(/merges\.txt not found/);
    expect(() => ClipTokenizer.fromDirectory(tempDir({ "merges.txt": "copy" }))).toThrow(/vocab\.json not found/);
  });

  it("names a file that is not valid JSON", () => {
    expect(() => ClipTokenizer.fromDirectory(tempDir({ "vocab.json": "{ not json", "merges.txt": "copy" }))).toThrow(
      /vocab\.json is not valid JSON/,
    );
    expect(() => ClipTokenizer.fromDirectory(tempDir({ "tokenizer.json": "[" }))).toThrow(/tokenizer\.json is not valid JSON/);
    expect(() =>
      ClipTokenizer.fromDirectory(
        tempDir({ "vocab.json": "copy", "merges.txt": "copy", "tokenizer_config.json": "{,}" }),
      ),
    ).toThrow(/tokenizer_config\.json is not valid JSON/);
  });

  it("names a file with the wrong shape", () => {
    expect(() => ClipTokenizer.fromDirectory(tempDir({ "vocab.json": '{"a": "x"}', "merges.txt": "copy" }))).toThrow(
      /vocab\.json has an unexpected shape at a/,
    );
    expect(() => ClipTokenizer.fromDirectory(tempDir({ "tokenizer.json": '{"model": {}}' }))).toThrow(
      /tokenizer\.json has an unexpected shape at model\.vocab/,
    );
    expect(() =>
      ClipTokenizer.fromDirectory(tempDir({ "tokenizer.json": JSON.stringify({ model: { type: "WordPiece", vocab: {}, merges: [] } }) })),
    ).toThrow(/tokenizer\.json: model type WordPiece is not BPE/);
  });

  it("names merges.txt and the line of a malformed merge", () => {
    const merges = readFileSync(join(modelDir, "merges.txt"), "utf8").split("\n");
    merges.splice(3, 0, "three part merge");
    expect(() => ClipTokenizer.fromDirectory(tempDir({ "vocab.json": "copy", "merges.txt": merges.join("\n") }))).toThrow(
      /merges\.txt: merge 4 is not "left right"/,
    );
    expect(() => ClipTokenizer.fromDirectory(tempDir({ "vocab.json": "copy", "merges.txt": "#version: 0.2\n" }))).toThrow(
      /merges\.txt has no merges/,
    );
  });

  it("names the config file whose special token is not in the vocabulary", () => {
    const dir = tempDir({
      "vocab.json": "copy",
      "merges.txt": "copy",
      "special_tokens_map.json": JSON.stringify({ pad_token: "<pad>" }),
    });
    expect(() => ClipTokenizer.fromDirectory(dir)).toThrow(/special_tokens_map\.json.*pad_token "<pad>" is not in the vocabulary/);
  });
});
