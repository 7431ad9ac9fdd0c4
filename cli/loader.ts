// Type-checking with ts-morph's bundled TypeScript: the fallback where TypeScript 7's native compiler is not installed.
import path from 'node:path';
import { Project, ts } from 'ts-morph';
import type { Diagnostic } from './typecheck.js';

/**
 * Type-checks a model file (absolute path) with ts-morph's bundled TypeScript under `options` (tsconfig's JSON form,
 * from typecheck.ts): the fallback where TypeScript 7's native compiler is not installed.
 */
export function typeCheck(file: string, options: Record<string, unknown>): Diagnostic[] {
  const { options: compilerOptions, errors } = ts.convertCompilerOptionsFromJson(options, path.dirname(file));
  if (errors.length) throw new Error(`type-check options: ${ts.flattenDiagnosticMessageText(errors[0]!.messageText, ' ')}`);
  const project = new Project({ skipAddingFilesFromTsConfig: true, compilerOptions });
  project.addSourceFileAtPath(file);
  return project.getPreEmitDiagnostics()
    .filter((d) => d.getCategory() === ts.DiagnosticCategory.Error)
    .map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.compilerObject.messageText, ' ');
      const sf = d.getSourceFile();
      if (!sf) return { text };
      const { line, column } = sf.getLineAndColumnAtPos(d.getStart() ?? 0);
      return { file: sf.getFilePath(), line, col: column, text };
    });
}
