// Parse an AsyncAPI document with the official parser and print its diagnostics as JSON
// (severity 0 error, 1 warning, 2 information, 3 hint). With a second argument, a JSON file
// {address: [{headers, body}]} of messages seen on the wire, check each against the messages
// its channel declares: one of them (by content type) must accept its headers and payload.
// Exits 1 on any error diagnostic or any message no declared message accepts.
import fs from "node:fs";
import { Parser } from "@asyncapi/parser";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [docFile, wireFile] = process.argv.slice(2);
const { document, diagnostics } = await new Parser().parse(fs.readFileSync(docFile, "utf8"));
const report = {
  parsed: document !== undefined,
  channels: document ? document.channels().all().map((c) => c.address()) : [],
  diagnostics: diagnostics.map((d) => ({
    severity: d.severity,
    code: d.code,
    message: d.message,
    path: d.path.join("."),
  })),
  checked: 0,
  unmatched: [],
};

// The parser adds x-parser-* annotations to resolved schemas: not strict mode's business here.
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

function accepts(message, headers, body) {
  const why = [];
  const contentType = message.contentType() || document.defaultContentType();
  if (contentType !== (headers["content-type"] || "application/json")) return [`content type ${contentType}`];
  if (message.hasHeaders() && !ajv.validate(message.headers().json(), headers)) why.push(ajv.errors);
  if (message.hasPayload() && !ajv.validate(message.payload().json(), body)) why.push(ajv.errors);
  return why;
}

if (document && wireFile) {
  const wire = JSON.parse(fs.readFileSync(wireFile, "utf8"));
  for (const [address, seen] of Object.entries(wire)) {
    const channel = document.channels().all().find((c) => c.address() === address);
    for (const { headers, body } of seen) {
      report.checked += 1;
      const messages = channel ? channel.messages().all() : [];
      const reasons = messages.map((m) => ({ message: m.id(), why: accepts(m, headers || {}, body) }));
      if (!reasons.some((r) => r.why.length === 0)) report.unmatched.push({ address, headers, reasons });
    }
  }
}
console.log(JSON.stringify(report, null, 2));
const failed = !report.parsed || diagnostics.some((d) => d.severity === 0) || report.unmatched.length;
process.exit(failed ? 1 : 0);
