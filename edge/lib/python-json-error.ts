// FastAPI answers a body that is not valid JSON with the reason and offset Python's `json` module reports:
// {"type":"json_invalid","loc":["body",<offset>],...,"ctx":{"error":"Expecting ',' delimiter"}}. JSON.parse
// does the parsing on the fast path; when it fails, this scanner (the grammar of CPython's C scanner, without
// recursion so deep nesting cannot overflow the stack) finds Python's message and offset.
//
// Differences kept on purpose: Python also accepts NaN, Infinity and -Infinity; we refuse them ("Expecting
// value"), since no field of the API can hold them. Messages are CPython 3.12's (3.13 added "Illegal trailing
// comma ..." where 3.12 says "Expecting property name enclosed in double quotes" / "Expecting value").

export interface PythonJsonError {
  message: string;
  /** Offset in code points (Python str indices), not UTF-16 units. */
  position: number;
}

class ScanError extends Error {
  constructor(
    readonly reason: string,
    readonly index: number,
  ) {
    super(reason);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;

function skipWhitespace(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
    i++;
  }
  return i;
}

/** Scans a string whose opening quote is at quote; returns the index after the closing quote. */
function scanString(text: string, quote: number): number {
  let i = quote + 1;
  const len = text.length;
  for (;;) {
    if (i >= len) throw new ScanError("Unterminated string starting at", quote);
    const c = text.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c < 0x20) throw new ScanError("Invalid control character at", i);
    if (c !== 0x5c) {
      i++;
      continue;
    }
    // A backslash at i.
    if (i + 1 >= len) throw new ScanError("Unterminated string starting at", quote);
    const esc = text[i + 1];
    if (esc !== "u") {
      if (!'"\\/bfnrt'.includes(esc)) throw new ScanError("Invalid \\escape", i);
      i += 2;
      continue;
    }
    const u = i + 1;
    // CPython wants the 4 digits and at least one character after them, and reports the offset of the "u".
    if (u + 5 >= len || !HEX4.test(text.slice(u + 1, u + 5))) throw new ScanError("Invalid \\uXXXX escape", u);
    const code = parseInt(text.slice(u + 1, u + 5), 16);
    i = u + 5;
    // A high surrogate followed by "\u" must be followed by 4 more hex digits.
    if (code >= 0xd800 && code <= 0xdbff && i + 6 < len && text[i] === "\\" && text[i + 1] === "u") {
      if (!HEX4.test(text.slice(i + 2, i + 6))) throw new ScanError("Invalid \\uXXXX escape", i + 1);
      i += 6;
    }
  }
}

function scanNumber(text: string, i: number): number | null {
  NUMBER.lastIndex = i;
  const m = NUMBER.exec(text);
  return m ? i + m[0].length : null;
}

type Frame = "object" | "array";

/** Where Python's json.loads fails on text; null if it would not (JSON.parse disagreeing is not expected). */
export function locateJsonError(text: string): PythonJsonError | null {
  try {
    scanDocument(text);
    return null;
  } catch (err) {
    if (err instanceof ScanError) return { message: err.reason, position: codePointOffset(text, err.index) };
    throw err;
  }
}

function scanDocument(text: string): void {
  const stack: Frame[] = [];
  const len = text.length;
  let i = skipWhitespace(text, 0);
  let state: "value" | "key" | "after" = "value";
  for (;;) {
    if (state === "value") {
      const c = text[i];
      if (c === '"') {
        i = scanString(text, i);
        state = "after";
      } else if (c === "{") {
        i = skipWhitespace(text, i + 1);
        if (text[i] === "}") {
          i++;
          state = "after";
        } else {
          stack.push("object");
          state = "key";
        }
      } else if (c === "[") {
        i = skipWhitespace(text, i + 1);
        if (text[i] === "]") {
          i++;
          state = "after";
        } else {
          stack.push("array");
        }
      } else if (text.startsWith("null", i) || text.startsWith("true", i)) {
        i += 4;
        state = "after";
      } else if (text.startsWith("false", i)) {
        i += 5;
        state = "after";
      } else {
        const end = i < len ? scanNumber(text, i) : null;
        if (end === null) throw new ScanError("Expecting value", i);
        i = end;
        state = "after";
      }
      continue;
    }
    if (state === "key") {
      if (text[i] !== '"') throw new ScanError("Expecting property name enclosed in double quotes", i);
      i = skipWhitespace(text, scanString(text, i));
      if (text[i] !== ":") throw new ScanError("Expecting ':' delimiter", i);
      i = skipWhitespace(text, i + 1);
      state = "value";
      continue;
    }
    // After a complete value.
    const frame = stack[stack.length - 1];
    if (frame === undefined) {
      i = skipWhitespace(text, i);
      if (i !== len) throw new ScanError("Extra data", i);
      return;
    }
    i = skipWhitespace(text, i);
    const close = frame === "object" ? "}" : "]";
    if (text[i] === close) {
      stack.pop();
      i++;
      continue;
    }
    if (text[i] !== ",") throw new ScanError("Expecting ',' delimiter", i);
    i = skipWhitespace(text, i + 1);
    state = frame === "object" ? "key" : "value";
  }
}

/** Python counts code points; JavaScript indexes UTF-16 units (an emoji is 1 vs 2). */
function codePointOffset(text: string, index: number): number {
  let pairs = 0;
  for (let i = 0; i < index - 1; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        pairs++;
        i++;
      }
    }
  }
  return index - pairs;
}
