// The DomainError a promise rejects with (failing the test if it resolves or rejects with anything else), for
// assertions on its code and message.
import { expect } from "vitest";
import { DomainError } from "../../shared/errors/error-codes.js";

export async function domainError(promise: Promise<unknown>): Promise<DomainError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DomainError);
  return err as DomainError;
}
