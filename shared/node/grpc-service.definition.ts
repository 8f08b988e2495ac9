// Node-only: a @grpc/grpc-js service definition built from a protobuf-es service descriptor, so the grpc-js
// server and client use the same generated types (shared/gen) as the Connect listener and the Workers client.
// Messages go through toBinary/fromBinary; no proto-loader, no runtime .proto parsing.
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";

// grpc-js types each method by its message types; one definition serves every method, so `any` here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyMessage = any;

function serializer(schema: DescMessage): (message: AnyMessage) => Buffer {
  return (message) => {
    const bytes = toBinary(schema, message);
    // A view, not a copy: grpc-js only reads it.
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(schema: DescMessage): (bytes: Buffer) => AnyMessage {
  return (bytes) => fromBinary(schema, bytes);
}

/**
 * Keys are the proto method names ("Generate"); `originalName` adds the camelCase one ("generate"), which
 * grpc-js accepts for handlers and exposes on generated clients.
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, MethodDefinition<AnyMessage, AnyMessage>> = {};
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.localName,
    };
  }
  return definition;
}
