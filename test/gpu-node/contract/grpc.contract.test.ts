import { createGrpcGpuClient } from "../../../edge/gpu/grpc.gpu-client.js";
import { describeGpuNodeContract } from "./gpu-node.contract.js";

describeGpuNodeContract("grpc", {
  client: (node, tierSecret) => createGrpcGpuClient({ address: `127.0.0.1:${node.grpcPort}`, tierSecret }),
});
