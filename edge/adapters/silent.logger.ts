import type { Logger } from "../ports/logger.port.js";

const nothing = () => {};

export const silentLogger: Logger = { error: nothing, warn: nothing, info: nothing, debug: nothing };
