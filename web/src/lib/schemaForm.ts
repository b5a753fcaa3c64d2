// An edit form from a tool's JSON schema (pydantic's output): one field per property, typed
// from the schema, and back to JSON arguments. Pure; unit-tested in schemaForm.test.ts.

export type FieldKind = "text" | "long-text" | "number" | "integer" | "list" | "choice" | "boolean" | "json";

export interface Field {
  name: string;
  label: string;
  kind: FieldKind;
  required: boolean;
  nullable: boolean;
  choices: string[];
  hint: string;
}

type Schema = Record<string, unknown>;

const LONG = new Set(["body", "description", "notes"]);

function variant(schema: Schema): { type: Schema; nullable: boolean } {
  const options = (schema.anyOf as Schema[] | undefined) ?? null;
  if (!options) return { type: schema, nullable: false };
  const real = options.filter((o) => o.type !== "null");
  return { type: real.length === 1 ? real[0] : { type: "json" }, nullable: real.length < options.length };
}

function kindOf(name: string, type: Schema): FieldKind {
  if (Array.isArray(type.enum)) return "choice";
  switch (type.type) {
    case "string":
      return LONG.has(name) || Number(type.maxLength ?? 0) > 1000 ? "long-text" : "text";
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
      return (type.items as Schema | undefined)?.type === "string" ? "list" : "json";
    default:
      return "json";
  }
}

export function fields(schema: Schema): Field[] {
  const properties = (schema.properties ?? {}) as Record<string, Schema>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries(properties)
    .filter(([name]) => name !== "confidence" && name !== "rationale")
    .map(([name, raw]) => {
      const { type, nullable } = variant(raw);
      const hint = [raw.description, type.format === "date-time" ? "ISO 8601, e.g. 2026-12-01T09:00:00+01:00" : type.format === "date" ? "YYYY-MM-DD" : ""]
        .filter(Boolean)
        .join(" · ");
      return {
        name,
        label: String(raw.title ?? name).replace(/_/g, " "),
        kind: kindOf(name, type),
        required: required.has(name),
        nullable,
        choices: ((type.enum as unknown[] | undefined) ?? []).map(String),
        hint: String(hint),
      };
    });
}

/** What the form shows for a value. */
export function toInput(field: Field, value: unknown): string {
  if (value === undefined || value === null) return "";
  if (field.kind === "list" && Array.isArray(value)) return value.join(", ");
  if (field.kind === "json") return JSON.stringify(value);
  return String(value);
}

export class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** Arguments from the form's strings; an empty optional field is left out (the tool's
 * default applies). Throws FieldError naming the field for what cannot be parsed. */
export function toArguments(form: Field[], values: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of form) {
    const raw = (values[field.name] ?? "").trim();
    if (raw === "") {
      if (field.required) throw new FieldError(field.name, `${field.label} is required`);
      if (field.nullable && field.name in values) out[field.name] = null;
      continue;
    }
    switch (field.kind) {
      case "integer":
      case "number": {
        const n = Number(raw);
        if (!Number.isFinite(n) || (field.kind === "integer" && !Number.isInteger(n))) {
          throw new FieldError(field.name, `${field.label} must be ${field.kind === "integer" ? "a whole number" : "a number"}`);
        }
        out[field.name] = n;
        break;
      }
      case "boolean":
        out[field.name] = raw === "true";
        break;
      case "list":
        out[field.name] = raw.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
        break;
      case "json":
        try {
          out[field.name] = JSON.parse(raw);
        } catch {
          throw new FieldError(field.name, `${field.label} must be valid JSON`);
        }
        break;
      default:
        out[field.name] = values[field.name];
    }
  }
  return out;
}
