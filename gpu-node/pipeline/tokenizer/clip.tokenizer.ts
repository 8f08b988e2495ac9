// The CLIP tokenizer as diffusers' encode_prompt uses it (padding="max_length", truncation=True), giving the ids
// of Hugging Face's fast CLIPTokenizer:
//   normalise (NFC, whitespace runs -> " ", lowercase) -> split off special tokens (<|startoftext|>, <|endoftext|>)
//   -> CLIP's pre-tokenising regex -> UTF-8 bytes as printable characters (GPT-2 byte level)
//   -> BPE with "</w>" on each word's last symbol -> ids, then [bos, ...ids, eos] padded/cut to model_max_length.
import { readClipTokenizerFiles, type ClipTokenizerFiles } from "./clip-tokenizer.files.js";

export interface ClipEncoding {
  /** Exactly maxLength ids: bos, the prompt's tokens (cut to maxLength - 2), eos, then pad. */
  ids: number[];
  /** The prompt had more tokens than fit, so its end was dropped. */
  truncated: boolean;
}

const END_OF_WORD = "</w>";
// Whitespace as the fast tokenizer's regex engine (Oniguruma) defines \s; JavaScript's \s differs (U+FEFF, U+0085).
const WHITESPACE = "\\t\\n\\v\\f\\r\\x85\\p{Zs}\\u2028\\u2029";
const WHITESPACE_RUN = new RegExp(`[${WHITESPACE}]+`, "gu");
// CLIP's pattern (special-token alternatives dropped: those are split off before this runs). What it does not
// match is whitespace, which is discarded.
const PRE_TOKEN = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${WHITESPACE}\\p{L}\\p{N}]+`, "gu");
/** Words are few per prompt but the process is long-lived: bound the BPE cache rather than grow it forever. */
const BPE_CACHE_LIMIT = 20_000;

/**
 * GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the rest move to U+0100 and up,
 * so every byte sequence is a string of visible symbols the vocabulary can name.
 */
function byteToSymbolTable(): string[] {
  const table = new Array<string>(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + shifted++);
  }
  return table;
}

const BYTE_SYMBOL = byteToSymbolTable();
const utf8 = new TextEncoder();

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  private readonly unkId: number;
  private readonly vocab: Map<string, number>;
  private readonly mergeRanks: Map<string, number>;
  private readonly specialIds: Map<string, number>;
  private readonly specialPattern: RegExp | null;
  private readonly cache = new Map<string, number[]>();

  constructor(files: ClipTokenizerFiles) {
    this.vocab = files.vocab;
    this.maxLength = files.maxLength;
    this.bosId = this.idOf(files.bosToken);
    this.eosId = this.idOf(files.eosToken);
    this.padId = this.idOf(files.padToken);
    this.unkId = files.vocab.get(files.unkToken) ?? this.eosId;
    this.mergeRanks = new Map();
    files.merges.forEach(([left, right], rank) => {
      const key = `${left} ${right}`;
      // The first occurrence wins, as in a rank dictionary built in file order.
      if (!this.mergeRanks.has(key)) this.mergeRanks.set(key, rank);
    });
    this.specialIds = new Map(files.specialTokens.map((t) => [t, this.idOf(t)]));
    // Longest first, so a token that starts another cannot cut it short (HF matches leftmost-longest).
    const specials = [...this.specialIds.keys()].sort((a, b) => b.length - a.length);
    this.specialPattern = specials.length > 0 ? new RegExp(specials.map(escapeRegExp).join("|"), "gu") : null;
  }

  /** Loads vocab.json + merges.txt (or tokenizer.json) and the config files from a model's tokenizer/ folder. */
  static fromDirectory(dir: string): ClipTokenizer {
    return new ClipTokenizer(readClipTokenizerFiles(dir));
  }

  encode(text: string): ClipEncoding {
    const tokens = this.tokenize(text);
    const room = this.maxLength - 2;
    const kept = Math.min(tokens.length, room);
    const ids = new Array<number>(this.maxLength).fill(this.padId);
    ids[0] = this.bosId;
    for (let i = 0; i < kept; i++) ids[i + 1] = tokens[i];
    ids[kept + 1] = this.eosId;
    return { ids, truncated: tokens.length > room };
  }

  /** The prompt's token ids without bos/eos, padding or truncation. */
  tokenize(text: string): number[] {
    const normalized = text.normalize("NFC").replace(WHITESPACE_RUN, " ").toLowerCase();
    const ids: number[] = [];
    let start = 0;
    if (this.specialPattern !== null) {
      for (const match of normalized.matchAll(this.specialPattern)) {
        this.tokenizeSegment(normalized.slice(start, match.index), ids);
        ids.push(this.specialIds.get(match[0]) as number);
        start = match.index + match[0].length;
      }
    }
    this.tokenizeSegment(normalized.slice(start), ids);
    return ids;
  }

  private tokenizeSegment(segment: string, out: number[]): void {
    for (const match of segment.matchAll(PRE_TOKEN)) {
      for (const id of this.wordIds(match[0])) out.push(id);
    }
  }

  private wordIds(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached !== undefined) return cached;
    const ids = this.bpe(word).map((symbol) => this.vocab.get(symbol) ?? this.unkId);
    if (this.cache.size >= BPE_CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /** CLIP's BPE: repeatedly merge every occurrence of the best-ranked adjacent pair, left to right. */
  private bpe(word: string): string[] {
    let symbols: string[] = [];
    for (const byte of utf8.encode(word)) symbols.push(BYTE_SYMBOL[byte]);
    symbols[symbols.length - 1] += END_OF_WORD;

    while (symbols.length > 1) {
      let bestRank = Number.POSITIVE_INFINITY;
      let bestAt = -1;
      for (let i = 0; i < symbols.length - 1; i++) {
        const rank = this.mergeRanks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          bestAt = i;
        }
      }
      if (bestAt < 0) break;
      const first = symbols[bestAt];
      const second = symbols[bestAt + 1];
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; ) {
        if (i < symbols.length - 1 && symbols[i] === first && symbols[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]);
          i += 1;
        }
      }
      symbols = merged;
    }
    return symbols;
  }

  private idOf(token: string): number {
    const id = this.vocab.get(token);
    if (id === undefined) throw new Error(`tokenizer: token ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  }
}
