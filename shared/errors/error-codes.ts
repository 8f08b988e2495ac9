// The one table that maps domain errors to HTTP statuses and gRPC status codes. Everything that crosses a
// tier boundary (HTTP responses, gRPC statuses, `failed` events, task error messages) goes through it.

/** gRPC status codes (google.rpc.Code); numeric so this file runs anywhere. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

interface ErrorSpec {
  http: number;
  grpc: GrpcCode;
  /** Whether trying the same work again (on this or another node) can succeed. */
  retryable: boolean;
}

export const ERROR_TABLE = {
  invalid_argument: { http: 422, grpc: GrpcCode.INVALID_ARGUMENT, retryable: false },
  unauthenticated: { http: 401, grpc: GrpcCode.UNAUTHENTICATED, retryable: false },
  not_found: { http: 404, grpc: GrpcCode.NOT_FOUND, retryable: false },
  conflict: { http: 409, grpc: GrpcCode.FAILED_PRECONDITION, retryable: false },
  rate_limited: { http: 429, grpc: GrpcCode.RESOURCE_EXHAUSTED, retryable: true },
  queue_full: { http: 503, grpc: GrpcCode.RESOURCE_EXHAUSTED, retryable: true },
  cancelled: { http: 409, grpc: GrpcCode.CANCELLED, retryable: false },
  unavailable: { http: 503, grpc: GrpcCode.UNAVAILABLE, retryable: true },
  deadline_exceeded: { http: 504, grpc: GrpcCode.DEADLINE_EXCEEDED, retryable: true },
  storage_error: { http: 502, grpc: GrpcCode.UNAVAILABLE, retryable: true },
  out_of_memory: { http: 507, grpc: GrpcCode.RESOURCE_EXHAUSTED, retryable: false },
  internal: { http: 500, grpc: GrpcCode.INTERNAL, retryable: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_TABLE;

/** An expected failure, carried as a value (or thrown across async boundaries) with its domain code. */
export class DomainError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DomainError";
    this.code = code;
  }
  get http(): number {
    return ERROR_TABLE[this.code].http;
  }
  get grpc(): GrpcCode {
    return ERROR_TABLE[this.code].grpc;
  }
  get retryable(): boolean {
    return ERROR_TABLE[this.code].retryable;
  }
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_TABLE, value);
}

/** The domain code for a gRPC status received from the other tier (first table entry with that status). */
export function errorCodeFromGrpc(code: number): ErrorCode {
  for (const [name, spec] of Object.entries(ERROR_TABLE)) {
    if (spec.grpc === code) return name as ErrorCode;
  }
  return "internal";
}
