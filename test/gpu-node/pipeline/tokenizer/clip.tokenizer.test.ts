import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ClipTokenizer } from "../../../../gpu-node/pipeline/tokenizer/clip.tokenizer.js";

interface TokenizerCase {
  name: string;
  prompt: string;
  input_ids: number[];
  untruncated_ids: number[];
  truncated: boolean;
}
interface TokenizerGoldens {
  max_length: number;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
  cases: TokenizerCase[];
}

const goldens = JSON.parse(
  readFileSync(new URL("./fixtures/tokenizer.json", import.meta.url), "utf8"),
) as TokenizerGoldens;
const modelDir = fileURLToPath(new URL("../../../../models/tiny-sd/tokenizer", import.meta.url));
const tokenizer = ClipTokenizer.fromDirectory(modelDir);
/** "cat</w>" in CLIP's vocabulary. */
const CAT = 2368;

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "clip-tok-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A minimal Hugging Face tokenizer.json for CLIP, built from the slow files (as transformers' converter does). */
function writeTokenizerJson(dir: string, mergeStyle: "strings" | "pairs"): void {
  const vocab = JSON.parse(readFileSync(join(modelDir, "vocab.json"), "utf8")) as Record<string, number>;
  const lines = readFileSync(join(modelDir, "merges.txt"), "utf8").split("\n").slice(1).filter((l) => l !== "");
  const merges = mergeStyle === "strings" ? lines : lines.map((l) => l.split(" "));
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  });
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(49406, "<|startoftext|>"), special(49407, "<|endoftext|>")],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "NFC" },
        { type: "Replace", pattern: { Regex: "\\s+" }, content: " " },
        { type: "Lowercase" },
      ],
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: {
            Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: "Removed",
          invert: true,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "RobertaProcessing",
      sep: ["<|endoftext|>", 49407],
      cls: ["<|startoftext|>", 49406],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<|endoftext|>",
      continuing_subword_prefix: "",
      end_of_word_suffix: "</w>",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(json));
}

describe("ClipTokenizer on the goldens (HF fast CLIPTokenizer, padded to 77)", () => {
  it("reads bos/eos/pad and model_max_length from the model's config", () => {
    expect(tokenizer.maxLength).toBe(goldens.max_length);
    expect(tokenizer.bosId).toBe(goldens.bos_token_id);
    expect(tokenizer.eosId).toBe(goldens.eos_token_id);
    expect(tokenizer.padId).toBe(goldens.pad_token_id);
  });

  for (const c of goldens.cases) {
    it(`${c.name}: ${JSON.stringify(c.prompt.slice(0, 40))}`, () => {
      const { ids, truncated } = tokenizer.encode(c.prompt);
      expect(ids).toEqual(c.input_ids);
      expect(truncated).toBe(c.truncated);
      expect(tokenizer.tokenize(c.prompt)).toEqual(c.untruncated_ids.slice(1, -1));
    });
  }

  it("gives the same ids the second time (BPE cache)", () => {
    for (const c of goldens.cases) expect(tokenizer.encode(c.prompt).ids).toEqual(c.input_ids);
  });
});

describe("ClipTokenizer truncation", () => {
  it("fits 75 tokens exactly and cuts the 76th", () => {
    const fits = tokenizer.encode(Array(75).fill("cat").join(" "));
    expect(fits.truncated).toBe(false);
    expect(fits.ids).toHaveLength(77);
    expect(fits.ids.at(-1)).toBe(tokenizer.eosId);

    const over = tokenizer.encode(Array(76).fill("cat").join(" "));
    expect(over.truncated).toBe(true);
    expect(over.ids).toEqual([tokenizer.bosId, ...Array(75).fill(CAT), tokenizer.eosId]);
  });

  it("cuts a long prompt to its first 75 tokens and ends it with eos", () => {
    const long = goldens.cases.find((c) => c.name === "long_prompt") as TokenizerCase;
    const { ids, truncated } = tokenizer.encode(long.prompt);
    expect(truncated).toBe(true);
    expect(ids).toEqual([...long.untruncated_ids.slice(0, 76), tokenizer.eosId]);
  });
});

describe("ClipTokenizer special tokens and normalisation", () => {
  it("turns the literal <|endoftext|> / <|startoftext|> inside a prompt into the single special ids", () => {
    expect(tokenizer.tokenize("a cat<|endoftext|>dog")).toEqual([320, CAT, 49407, 1929]);
    expect(tokenizer.tokenize("!<|startoftext|>")).toEqual([256, 49406]);
    // Matching happens after lowercasing, like the fast tokenizer's normalized added tokens.
    expect(tokenizer.tokenize("<|EndOfText|>")).toEqual([49407]);
  });

  it("treats Unicode whitespace the way the fast tokenizer does", () => {
    const plain = tokenizer.tokenize("a photo of a cat");
    expect(tokenizer.tokenize("a\u00a0photo\u3000of\u2003a\u0085cat")).toEqual(plain);
    // U+FEFF is not whitespace there (it is in JavaScript's \s): it stays a symbol.
    expect(tokenizer.tokenize("a\ufeffcat")).not.toEqual(tokenizer.tokenize("a cat"));
  });

  it("normalises to NFC before tokenising", () => {
    expect(tokenizer.tokenize("cafe\u0301")).toEqual(tokenizer.tokenize("caf\u00e9"));
  });
});

describe("ClipTokenizer from a tokenizer.json-only directory", () => {
  for (const style of ["strings", "pairs"] as const) {
    it(`matches the vocab.json + merges.txt ids (merges as ${style})`, () => {
      const dir = tempDir();
      writeTokenizerJson(dir, style);
      const fromJson = ClipTokenizer.fromDirectory(dir);
      expect(fromJson.maxLength).toBe(77);
      expect([fromJson.bosId, fromJson.eosId, fromJson.padId]).toEqual([49406, 49407, 49407]);
      for (const c of goldens.cases) {
        const { ids, truncated } = fromJson.encode(c.prompt);
        expect(ids).toEqual(c.input_ids);
        expect(truncated).toBe(c.truncated);
      }
    });
  }

  it("takes model_max_length and pad from config files next to tokenizer.json", () => {
    const dir = tempDir();
    writeTokenizerJson(dir, "strings");
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ model_max_length: 8, pad_token: "!" }));
    const t = ClipTokenizer.fromDirectory(dir);
    expect(t.encode("a photo").ids).toEqual([49406, 320, 1125, 49407, 0, 0, 0, 0]);
    expect(t.encode("a photo of a cat today").truncated).toBe(false); // 6 tokens fill the 8 slots
    expect(t.encode("a photo of a cat today again").truncated).toBe(true);
  });
});

describe("ClipTokenizer config files", () => {
  function slowCopy(): string {
    const dir = tempDir();
    copyFileSync(join(modelDir, "vocab.json"), join(dir, "vocab.json"));
    copyFileSync(join(modelDir, "merges.txt"), join(dir, "merges.txt"));
    return dir;
  }

  it("uses CLIP's defaults when there are no config files", () => {
    const t = ClipTokenizer.fromDirectory(slowCopy());
    expect([t.maxLength, t.bosId, t.eosId, t.padId]).toEqual([77, 49406, 49407, 49407]);
    expect(t.encode("a photo of a cat").ids).toEqual(goldens.cases[0].input_ids);
  });

  it("pads with an SD 2.x style pad token, with special_tokens_map.json over tokenizer_config.json", () => {
    const dir = slowCopy();
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ model_max_length: 77, pad_token: "<|endoftext|>" }));
    writeFileSync(
      join(dir, "special_tokens_map.json"),
      JSON.stringify({ pad_token: "!", eos_token: { content: "<|endoftext|>", lstrip: false } }),
    );
    const t = ClipTokenizer.fromDirectory(dir);
    const { ids } = t.encode("a photo of a cat");
    expect(ids.slice(0, 8)).toEqual([49406, 320, 1125, 539, 320, 2368, 49407, 0]);
    expect(ids.slice(7).every((id) => id === 0)).toBe(true);
    // "!" is an ordinary symbol in the prompt, not a special token.
    expect(t.tokenize("wow!")).toEqual(tokenizer.tokenize("wow!"));
  });

  it("treats transformers' huge model_max_length sentinel as unset", () => {
    const dir = slowCopy();
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ model_max_length: 1e30 }));
    expect(ClipTokenizer.fromDirectory(dir).maxLength).toBe(77);
  });
});
