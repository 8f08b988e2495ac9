import { DetailErrorSchema, ValidationErrorSchema } from "../../shared/api/errors.schema.js";

// Response declarations shared by routes, so every route documents FastAPI's error shapes the same way.

export const jsonContent = <T>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

export const unauthorizedResponse = jsonContent(DetailErrorSchema, "Missing (缺少API Key) or invalid (无效的API Key) API key");
export const validationErrorResponse = jsonContent(ValidationErrorSchema, "Validation error (pydantic v2 format)");

/** Any of the three ways to present a key (the scheme names are registered in openapi.ts). */
export const apiKeySecurity: Array<Record<string, string[]>> = [{ ApiKeyHeader: [] }, { BearerAuth: [] }, { ApiKeyQuery: [] }];
