import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { locateJsonError } from "../../../edge/lib/python-json-error.js";

// Goldens from CPython's json.loads (fixtures/python_json_goldens.py).
const goldens = JSON.parse(readFileSync(new URL("./fixtures/python-json-goldens.json", import.meta.url), "utf8")) as {
  python: string;
  cases: Array<{ doc: string; msg: string; pos: number }>;
};

describe(`locateJsonError matches CPython ${goldens.python}`, () => {
  for (const golden of goldens.cases) {
    it(JSON.stringify(golden.doc).slice(0, 70), () => {
      expect(() => JSON.parse(golden.doc)).toThrow();
      expect(locateJsonError(golden.doc)).toEqual({ message: golden.msg, position: golden.pos });
    });
  }
});

describe("locateJsonError", () => {
  it("finds nothing wrong in valid JSON", () => {
    expect(locateJsonError('{"a": [1, 2.5e3, "x\\n\\u00e9", true, false, null, {}], "b": {"c": []}}')).toBeNull();
  });

  it("refuses NaN and Infinity, which Python would accept but no field can hold", () => {
    expect(locateJsonError('{"g": NaN}')).toEqual({ message: "Expecting value", position: 6 });
    expect(locateJsonError('{"g": -Infinity}')).toEqual({ message: "Expecting value", position: 6 });
  });

  it("survives nesting far deeper than any stack", () => {
    const deep = "[".repeat(1_000_000) + "x";
    expect(locateJsonError(deep)).toEqual({ message: "Expecting value", position: 1_000_000 });
  });
});
