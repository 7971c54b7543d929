import { describe, expect, it } from 'vitest';
import { openpyxlProblem, PYTHON_READERS_INSTALL } from './read-export';

// The pipeline and end-to-end tests read exported files with openpyxl and do not skip without
// it (only the dedicated interop tests do): a missing package must say what to install.
describe('reading exported files needs openpyxl', () => {
  it('names the apt packages when the interpreter cannot import openpyxl, or cannot run at all', () => {
    // /bin/false runs and fails, as a python3 without the package does.
    expect(openpyxlProblem('/bin/false')).toBe(
      "reading exported files needs Debian's openpyxl: /bin/false cannot import openpyxl; install the test suite's Python packages with: apt-get install -y python3-openpyxl python3-msoffcrypto-tool",
    );
    expect(openpyxlProblem('/nonexistent/python3')).toMatch(
      /^reading exported files needs Debian's openpyxl: \/nonexistent\/python3 cannot be run \(.*ENOENT.*\); install .*: apt-get install -y python3-openpyxl python3-msoffcrypto-tool$/,
    );
    expect(PYTHON_READERS_INSTALL).toBe('apt-get install -y python3-openpyxl python3-msoffcrypto-tool');
  });

  // In CI (.ci/run installs the packages) the readers must be there: the tests that need them run.
  it.runIf(process.env.CI)('finds openpyxl under CI', () => {
    expect(openpyxlProblem()).toBeUndefined();
  });
});
