// The standard grpc.health.v1 service on the grpc-js listener: SERVING while the node accepts work,
// NOT_SERVING once it shuts down. Check for one-off probes, Watch for status streams.
import { create } from "@bufbuild/protobuf";
import type { Server, ServerUnaryCall, ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../shared/gen/grpc/health/v1/health_pb.js";
import { GrpcCode } from "../../shared/errors/error-codes.js";
import { grpcServiceDefinition } from "../../shared/node/grpc-service.definition.js";

export { ServingStatus };

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>>();

  /** `services`: the names probes may ask about; "" (the whole server) is always one. */
  constructor(services: string[], initial: ServingStatus = ServingStatus.SERVING) {
    for (const name of ["", ...services]) this.statuses.set(name, initial);
  }

  setStatus(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    for (const call of this.watchers.get(service) ?? []) call.write(create(HealthCheckResponseSchema, { status }));
  }

  /** Sets every known service at once (shutdown). */
  setAll(status: ServingStatus): void {
    for (const name of this.statuses.keys()) this.setStatus(name, status);
  }

  addToServer(server: Server): void {
    server.addService(grpcServiceDefinition(Health), {
      Check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) => {
        const status = this.statuses.get(call.request.service);
        if (status === undefined) {
          callback({ code: GrpcCode.NOT_FOUND, details: `unknown service "${call.request.service}"` });
          return;
        }
        callback(null, create(HealthCheckResponseSchema, { status }));
      },
      Watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const service = call.request.service;
        const status = this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        call.write(create(HealthCheckResponseSchema, { status }));
        let set = this.watchers.get(service);
        if (!set) this.watchers.set(service, (set = new Set()));
        set.add(call);
        call.on("cancelled", () => {
          set.delete(call);
        });
      },
    });
  }

  /** Ends open Watch streams so the server can close. */
  endWatches(): void {
    for (const set of this.watchers.values()) {
      for (const call of set) call.end();
      set.clear();
    }
  }
}
