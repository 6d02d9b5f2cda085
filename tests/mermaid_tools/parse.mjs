// node parse.mjs FILE...: parse each Mermaid diagram with Mermaid's own parser (mermaid.parse),
// in Node under jsdom (the parser sanitizes labels with DOMPurify, which needs a DOM).
// One JSON line per file: {file, ok: true, type} or {file, ok: false, error}; exit 1 on any error.
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const { window } = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = window;
globalThis.document = window.document;
const mermaid = (await import("mermaid")).default;
mermaid.initialize({ startOnLoad: false });
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  try {
    const result = await mermaid.parse(text);
    console.log(JSON.stringify({ file, ok: true, type: result.diagramType }));
  } catch (error) {
    console.log(JSON.stringify({ file, ok: false, error: String(error?.message ?? error) }));
    process.exitCode = 1;
  }
}
