// Compile every JSON Schema in DIR with Ajv's strict mode (draft 2020-12, formats on),
// then validate the events in EVENTS (a JSON object: schema file name -> list of event data),
// once as they are and once with useDefaults (which must neither add nor break anything).
// Prints a JSON report; exits 1 when anything failed or Ajv warned.
import fs from "node:fs";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [dir, eventsFile] = process.argv.slice(2);
const report = { compiled: [], problems: [] };
const logger = {
  log: () => {},
  warn: (...args) => report.problems.push({ kind: "warning", message: args.join(" ") }),
  error: (...args) => report.problems.push({ kind: "error", message: args.join(" ") }),
};

function ajv(useDefaults) {
  const instance = new Ajv2020({ strict: true, allErrors: true, useDefaults, logger });
  addFormats(instance);
  return instance;
}

const events = eventsFile ? JSON.parse(fs.readFileSync(eventsFile, "utf8")) : {};
for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".schema.json")).sort()) {
  const schema = JSON.parse(fs.readFileSync(path.join(dir, name), "utf8"));
  for (const useDefaults of [false, true]) {
    let validate;
    try {
      validate = ajv(useDefaults).compile(schema);
    } catch (err) {
      report.problems.push({ kind: "compile", schema: name, message: String(err.message) });
      break;
    }
    if (!useDefaults) report.compiled.push(name);
    for (const event of events[name] || []) {
      const copy = structuredClone(event);
      if (!validate(copy)) {
        report.problems.push({ kind: "invalid", schema: name, useDefaults, errors: validate.errors });
      } else if (JSON.stringify(copy) !== JSON.stringify(event)) {
        report.problems.push({ kind: "defaults-changed-event", schema: name, event: copy });
      }
    }
  }
}
console.log(JSON.stringify(report, null, 2));
process.exit(report.problems.length ? 1 : 0);
