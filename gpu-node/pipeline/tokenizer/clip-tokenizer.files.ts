// Reads a CLIP tokenizer as models ship it: the slow-tokenizer pair vocab.json + merges.txt (what diffusers'
// CLIPTokenizer loads), or a Hugging Face tokenizer.json alone; special tokens and model_max_length from
// special_tokens_map.json / tokenizer_config.json when present. Every failure names the file at fault.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

export interface ClipTokenizerFiles {
  vocab: Map<string, number>;
  /** BPE merges in rank order, each a pair of symbols. */
  merges: Array<[string, string]>;
  bosToken: string;
  eosToken: string;
  padToken: string;
  unkToken: string;
  /** Literal texts matched as whole special tokens before pre-tokenisation (HF's added tokens). */
  specialTokens: string[];
  maxLength: number;
}

// transformers' CLIPTokenizer defaults, used when the config files do not say otherwise.
const DEFAULT_BOS = "<|startoftext|>";
const DEFAULT_EOS = "<|endoftext|>";
/** CLIP's text encoder has 77 positions; transformers writes a huge sentinel when model_max_length is unset. */
const DEFAULT_MAX_LENGTH = 77;
const UNSET_MAX_LENGTH_ABOVE = 1_000_000;

const tokenValue = z.union([z.string(), z.object({ content: z.string() })]);
type TokenValue = z.infer<typeof tokenValue>;

const specialTokensSchema = z.looseObject({
  bos_token: tokenValue.nullish(),
  eos_token: tokenValue.nullish(),
  pad_token: tokenValue.nullish(),
  unk_token: tokenValue.nullish(),
});

const tokenizerConfigSchema = specialTokensSchema.extend({
  model_max_length: z.number().positive().nullish(),
});

const vocabSchema = z.record(z.string(), z.number().int().nonnegative());

const tokenizerJsonSchema = z.looseObject({
  added_tokens: z
    .array(z.looseObject({ id: z.number().int().nonnegative(), content: z.string(), special: z.boolean().optional() }))
    .optional(),
  truncation: z.looseObject({ max_length: z.number().int().positive() }).nullish(),
  model: z.looseObject({
    type: z.string().optional(),
    vocab: vocabSchema,
    merges: z.array(z.union([z.string(), z.tuple([z.string(), z.string()])])),
    unk_token: z.string().nullish(),
    end_of_word_suffix: z.string().nullish(),
  }),
});

export function readClipTokenizerFiles(dir: string): ClipTokenizerFiles {
  const vocabPath = join(dir, "vocab.json");
  const mergesPath = join(dir, "merges.txt");
  const tokenizerJsonPath = join(dir, "tokenizer.json");
  const configPath = join(dir, "tokenizer_config.json");
  const specialMapPath = join(dir, "special_tokens_map.json");

  const config = existsSync(configPath) ? parseJsonFile(configPath, tokenizerConfigSchema) : null;
  const specialMap = existsSync(specialMapPath) ? parseJsonFile(specialMapPath, specialTokensSchema) : null;

  let vocab: Map<string, number>;
  let merges: Array<[string, string]>;
  const addedSpecial: string[] = [];
  let unkFromModel: string | null = null;
  let maxLengthFromJson: number | null = null;

  const hasPair = existsSync(vocabPath) && existsSync(mergesPath);
  // The slow pair first: diffusers' model_index names CLIPTokenizer, which reads exactly these two files.
  if (hasPair || !existsSync(tokenizerJsonPath)) {
    if (!hasPair) {
      const missing = [vocabPath, mergesPath].filter((p) => !existsSync(p));
      throw new Error(
        `tokenizer: ${missing.join(" and ")} not found ` +
          "(a CLIP tokenizer needs vocab.json + merges.txt, or tokenizer.json)",
      );
    }
    vocab = new Map(Object.entries(parseJsonFile(vocabPath, vocabSchema)));
    merges = parseMergesTxt(mergesPath, readText(mergesPath));
  } else {
    const json = parseJsonFile(tokenizerJsonPath, tokenizerJsonSchema);
    const model = json.model;
    if (model.type !== undefined && model.type !== "BPE") {
      throw new Error(`tokenizer: ${tokenizerJsonPath}: model type ${model.type} is not BPE`);
    }
    if (model.end_of_word_suffix != null && model.end_of_word_suffix !== "</w>") {
      const suffix = model.end_of_word_suffix;
      throw new Error(`tokenizer: ${tokenizerJsonPath}: end_of_word_suffix "${suffix}" is not CLIP's "</w>"`);
    }
    vocab = new Map(Object.entries(model.vocab));
    merges = model.merges.map((m, i) => (typeof m === "string" ? splitMerge(tokenizerJsonPath, m, i + 1) : m));
    for (const t of json.added_tokens ?? []) {
      if (!vocab.has(t.content)) vocab.set(t.content, t.id);
      if (t.special !== false) addedSpecial.push(t.content);
    }
    unkFromModel = model.unk_token ?? null;
    maxLengthFromJson = json.truncation?.max_length ?? null;
  }

  // special_tokens_map.json wins over tokenizer_config.json, as transformers applies it last.
  const pick = (key: "bos_token" | "eos_token" | "pad_token" | "unk_token"): string | null =>
    tokenText(specialMap?.[key]) ?? tokenText(config?.[key]);
  const eosToken = pick("eos_token") ?? DEFAULT_EOS;
  const bosToken = pick("bos_token") ?? DEFAULT_BOS;
  const padToken = pick("pad_token") ?? eosToken;
  const unkToken = pick("unk_token") ?? unkFromModel ?? eosToken;

  const configFile = [specialMapPath, configPath].filter((p) => existsSync(p)).join(" / ") || dir;
  for (const [name, token] of [
    ["bos_token", bosToken],
    ["eos_token", eosToken],
    ["pad_token", padToken],
  ] as const) {
    if (!vocab.has(token)) {
      throw new Error(`tokenizer: ${configFile}: ${name} "${token}" is not in the vocabulary`);
    }
  }

  const configuredMax = config?.model_max_length ?? maxLengthFromJson;
  const maxLength =
    configuredMax == null || configuredMax > UNSET_MAX_LENGTH_ABOVE ? DEFAULT_MAX_LENGTH : Math.floor(configuredMax);
  if (maxLength < 2) {
    throw new Error(`tokenizer: ${configPath}: model_max_length ${maxLength} leaves no room for bos/eos`);
  }

  // bos/eos (and unk) are matched as whole tokens in the text; pad is not (SD 2.x pads with "!", an ordinary symbol).
  const specialTokens = [...new Set([bosToken, eosToken, ...addedSpecial, ...(vocab.has(unkToken) ? [unkToken] : [])])];

  return { vocab, merges, bosToken, eosToken, padToken, unkToken, specialTokens, maxLength };
}

function tokenText(value: TokenValue | null | undefined): string | null {
  if (value == null) return null;
  return typeof value === "string" ? value : value.content;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`tokenizer: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function parseJsonFile<T>(path: string, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readText(path));
  } catch (err) {
    if ((err as Error).message.startsWith("tokenizer:")) throw err;
    throw new Error(`tokenizer: ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue.path.join(".") || "(root)";
    throw new Error(`tokenizer: ${path} has an unexpected shape at ${at}: ${issue.message}`);
  }
  return parsed.data;
}

function parseMergesTxt(path: string, text: string): Array<[string, string]> {
  const merges: Array<[string, string]> = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    // The first line is a "#version: 0.2" header; blank lines end files.
    if (line === "" || (i === 0 && line.startsWith("#version"))) continue;
    merges.push(splitMerge(path, line, i + 1));
  }
  if (merges.length === 0) throw new Error(`tokenizer: ${path} has no merges`);
  return merges;
}

function splitMerge(path: string, line: string, lineNo: number): [string, string] {
  const parts = line.split(" ");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
    throw new Error(`tokenizer: ${path}: merge ${lineNo} is not "left right": ${JSON.stringify(line)}`);
  }
  return [parts[0], parts[1]];
}
