// How a refused call (not a failed task: those are `failed` events) leaves either listener: the gRPC status
// from the one error table, and the domain code in the trailer `x-error-code` so the edge need not guess it
// from the status (RESOURCE_EXHAUSTED is both queue_full and rate_limited).
import { timingSafeEqual, createHash } from "node:crypto";
import { DomainError, ERROR_TABLE, type ErrorCode, type GrpcCode } from "../../shared/errors/error-codes.js";

export const TIER_SECRET_HEADER = "x-tier-secret";
export const ERROR_CODE_TRAILER = "x-error-code";

export interface CallStatus {
  grpc: GrpcCode;
  code: ErrorCode;
  message: string;
}

export function callStatus(error: unknown): CallStatus {
  if (error instanceof DomainError) return { grpc: error.grpc, code: error.code, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { grpc: ERROR_TABLE.internal.grpc, code: "internal", message };
}

/** A check for the shared secret between tiers; null secret: every call passes. */
export function tierSecretCheck(secret: string | null): (presented: string | undefined) => DomainError | null {
  if (secret === null) return () => null;
  // Comparing digests keeps the comparison constant-time whatever the presented length.
  const expected = createHash("sha256").update(secret).digest();
  return (presented) => {
    if (presented === undefined || presented === "") {
      return new DomainError("unauthenticated", `missing ${TIER_SECRET_HEADER}`);
    }
    const actual = createHash("sha256").update(presented).digest();
    return timingSafeEqual(expected, actual) ? null : new DomainError("unauthenticated", `wrong ${TIER_SECRET_HEADER}`);
  };
}
