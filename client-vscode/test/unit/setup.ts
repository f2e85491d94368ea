/** Mocha's --require: `import "vscode"` resolves to the mock, since no editor runs the unit tests. */

import Module from "node:module";
import * as path from "node:path";

const mock = path.join(__dirname, "vscode_mock.js");
const resolver = Module as unknown as {
  _resolveFilename: (request: string, ...rest: unknown[]) => string;
};
const original = resolver._resolveFilename;
resolver._resolveFilename = function (request: string, ...rest: unknown[]): string {
  return request === "vscode" ? mock : original.call(this, request, ...rest);
};
