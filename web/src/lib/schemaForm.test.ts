import { describe, expect, it } from "vitest";
import { FieldError, fields, toArguments, toInput } from "./schemaForm";

const email = {
  properties: {
    to: { type: "array", items: { type: "string" }, title: "To" },
    subject: { type: "string", maxLength: 300, title: "Subject" },
    body: { type: "string", maxLength: 50000, title: "Body" },
    duration_minutes: { type: "integer", default: 30 },
    end: { anyOf: [{ type: "string", format: "date-time" }, { type: "null" }], default: null },
    confidence: { type: "number" },
  },
  required: ["to", "subject", "body"],
};

describe("schema form", () => {
  it("derives typed fields and drops the model's meta fields", () => {
    const form = fields(email);
    expect(form.map((f) => [f.name, f.kind])).toEqual([
      ["to", "list"], ["subject", "text"], ["body", "long-text"], ["duration_minutes", "integer"], ["end", "text"],
    ]);
    expect(form.find((f) => f.name === "end")?.nullable).toBe(true);
  });

  it("round-trips edited values to arguments", () => {
    const form = fields(email);
    const to = form[0];
    expect(toInput(to, ["a@x.com", "b@x.com"])).toBe("a@x.com, b@x.com");
    const args = toArguments(form, { to: "a@x.com, c@x.com", subject: "Hi", body: "Text", duration_minutes: "45", end: "" });
    expect(args).toEqual({ to: ["a@x.com", "c@x.com"], subject: "Hi", body: "Text", duration_minutes: 45, end: null });
  });

  it("names the field that is wrong", () => {
    const form = fields(email);
    expect(() => toArguments(form, { to: "a", subject: "", body: "b" })).toThrow(FieldError);
    expect(() => toArguments(form, { to: "a", subject: "s", body: "b", duration_minutes: "1.5" })).toThrow(/whole number/);
  });
});
