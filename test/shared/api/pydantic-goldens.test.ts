import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createGenerateRequestSchema } from "../../../shared/api/generate.schema.js";
import { zodIssuesToPydantic, type PydanticError } from "../../../shared/api/pydantic-errors.js";

// Goldens written by real pydantic (fixtures/pydantic_goldens.py) for a model with the spec's fields and the
// limits pydantic expresses itself: our 422 details must be the same, error for error.

interface Golden {
  input: unknown;
  errors: PydanticError[];
}

const goldens = JSON.parse(readFileSync(new URL("./fixtures/pydantic-goldens.json", import.meta.url), "utf8")) as {
  pydantic_version: string;
  cases: Golden[];
};

// Wide limits: the pixel budget is our own rule, not pydantic's.
const schema = createGenerateRequestSchema({ maxPixels: 2048 * 2048, maxInitImageBytes: 1024, defaultWidth: null, defaultHeight: null });

function ourErrors(input: unknown): PydanticError[] {
  const result = schema.safeParse(input);
  return result.success ? [] : zodIssuesToPydantic(result.error.issues, input, ["body"]);
}

describe(`generate request errors match pydantic ${goldens.pydantic_version}`, () => {
  it("has cases", () => expect(goldens.cases.length).toBeGreaterThan(50));
  for (const golden of goldens.cases) {
    it(`${JSON.stringify(golden.input).slice(0, 80)}`, () => {
      expect(ourErrors(golden.input)).toEqual(golden.errors);
    });
  }
});
