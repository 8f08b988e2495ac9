// `npm run dev`: for now the Node edge alone (config.yaml + environment). The full local stack (edge,
// gpu-node, s3rver) replaces this once those parts land.
import "../edge/node/main.js";
