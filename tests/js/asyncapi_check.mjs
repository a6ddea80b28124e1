// Parse an AsyncAPI document with the official parser and print its diagnostics as JSON
// (severity 0 error, 1 warning, 2 information, 3 hint); exits 1 on any error.
import fs from "node:fs";
import { Parser } from "@asyncapi/parser";

const text = fs.readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const report = {
  parsed: document !== undefined,
  channels: document ? document.channels().all().map((c) => c.address()) : [],
  diagnostics: diagnostics.map((d) => ({
    severity: d.severity,
    code: d.code,
    message: d.message,
    path: d.path.join("."),
  })),
};
console.log(JSON.stringify(report, null, 2));
process.exit(report.parsed && !diagnostics.some((d) => d.severity === 0) ? 0 : 1);
