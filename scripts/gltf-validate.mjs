#!/usr/bin/env node
// Referee: run the Khronos glTF-Validator on one glTF/GLB file and print its JSON report.
//
// Usage: node scripts/gltf-validate.mjs FILE [--max-issues N]
//
// Exit status: 0 when a report was produced (even if the asset has errors),
// 2 on usage error, 3 when the validator refused the input entirely (the
// error string is printed to stderr and a synthetic report to stdout).
//
// External resources are read only from INSIDE the asset's folder: URIs that
// climb out ('..', absolute paths, file:) or point at the network (http:,
// https:, anything with a scheme) are refused, so the validator reports an
// IO error for them instead of reading or fetching anything.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "package.json"));
const validator = require("gltf-validator");

function usage() {
  process.stderr.write("usage: node scripts/gltf-validate.mjs FILE [--max-issues N]\n");
  process.exit(2);
}

const args = process.argv.slice(2);
let file = null;
let maxIssues = 0; // 0 = unlimited
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--max-issues") {
    maxIssues = Number(args[++i]);
    if (!Number.isInteger(maxIssues) || maxIssues < 0) usage();
  } else if (file === null) {
    file = args[i];
  } else {
    usage();
  }
}
if (file === null) usage();

const fullpath = path.resolve(file);
const folder = path.dirname(fullpath);

function insideFolder(uri) {
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(uri)) return null; // any scheme: http, https, file, data handled by validator
  let decoded;
  try {
    decoded = decodeURIComponent(uri);
  } catch {
    return null;
  }
  if (path.isAbsolute(decoded) || decoded.startsWith("\\") || decoded.includes("\0")) return null;
  const target = path.resolve(folder, decoded);
  const rel = path.relative(folder, target);
  if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) return null;
  let real;
  try {
    real = fs.realpathSync(target);
  } catch {
    return target; // missing file: let readFile report it
  }
  const realRel = path.relative(fs.realpathSync(folder), real);
  if (realRel.startsWith("..") || path.isAbsolute(realRel)) return null; // symlink escaping the folder
  return real;
}

const externalResourceFunction = (uri) =>
  new Promise((resolve, reject) => {
    const target = insideFolder(uri);
    if (target === null) {
      reject(`refused to read '${uri}': outside the asset folder or remote`);
      return;
    }
    fs.readFile(target, (err, data) => {
      if (err) reject(err.toString());
      else resolve(new Uint8Array(data));
    });
  });

let bytes;
try {
  bytes = fs.readFileSync(fullpath);
} catch (err) {
  process.stderr.write(`cannot read ${file}: ${err}\n`);
  process.exit(2);
}

const ext = path.extname(fullpath).toLowerCase();
const options = {
  uri: path.basename(fullpath),
  maxIssues,
  writeTimestamp: false,
  externalResourceFunction,
};
if (ext === ".glb") options.format = "glb";
else if (ext === ".gltf") options.format = "gltf";

try {
  const report = await validator.validateBytes(new Uint8Array(bytes), options);
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(0);
} catch (err) {
  process.stderr.write(`validator refused ${file}: ${err}\n`);
  const report = {
    uri: path.basename(fullpath),
    validatorVersion: validator.version(),
    issues: {
      numErrors: 1,
      numWarnings: 0,
      numInfos: 0,
      numHints: 0,
      messages: [{ code: "VALIDATOR_REFUSED", message: String(err), severity: 0, pointer: "" }],
      truncated: false,
    },
  };
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(3);
}
