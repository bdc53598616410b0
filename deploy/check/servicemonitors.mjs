// Validates the ServiceMonitors the chart renders (written by validate.py)
// with the prometheus-operator models of npm @kubernetes-models/prometheus-operator
// (generated from the operator's CRD schemas). Usage:
//   node servicemonitors.mjs NODE_MODULES_DIR MONITORS.json
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, file] = process.argv.slice(2);
const { ServiceMonitor } = await import(
  pathToFileURL(
    join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js"),
  ).href
);
let failed = 0;
const monitors = JSON.parse(readFileSync(file, "utf8"));
for (const { where, doc } of monitors) {
  try {
    if (doc.apiVersion !== ServiceMonitor.apiVersion || doc.kind !== ServiceMonitor.kind) {
      throw new Error(`apiVersion/kind must be ${ServiceMonitor.apiVersion} ${ServiceMonitor.kind}`);
    }
    new ServiceMonitor(doc).validate();
    const endpoints = doc.spec.endpoints ?? [];
    if (!endpoints.some((e) => e.port === "http" && e.path === "/metrics")) {
      throw new Error("no endpoint scrapes /metrics on the port named http");
    }
  } catch (error) {
    failed += 1;
    console.error(`ERROR ${where}: ${error.message}`);
  }
}
console.log(`ServiceMonitors: ${monitors.length} checked, ${failed} failed`);
process.exit(failed ? 1 : 0);
