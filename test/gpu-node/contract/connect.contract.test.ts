import { createConnectGpuClient } from "../../../edge/gpu/connect.gpu-client.js";
import { describeGpuNodeContract } from "./gpu-node.contract.js";

describeGpuNodeContract("grpc-web", {
  client: (node, tierSecret) => createConnectGpuClient({ baseUrl: `http://127.0.0.1:${node.webPort}`, tierSecret }),
});
