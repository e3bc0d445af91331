// Reading configuration.toml from disk: readInputFile (a regular file, at most
// MAX_CONFIG_FILE_BYTES; symlinks followed, since Kata installs the config as one), then
// parseKataConfig.
import { err, type Result } from 'neverthrow';
import { planError, problem, type PlanError } from '../errors.js';
import { MAX_CONFIG_FILE_BYTES } from '../input/limits.js';
import { readInputFile } from '../input/read-input-file.js';
import { parseKataConfig, type ParsedConfig } from './parse-config.js';

/** Reads and validates the config at `file`; problems name `file`. */
export function readKataConfigFile(file: string): Result<ParsedConfig, PlanError> {
  const text = readInputFile(file, {
    maxBytes: MAX_CONFIG_FILE_BYTES,
    limitName: 'MAX_CONFIG_FILE_BYTES',
  });
  if (text.isErr()) return err(planError(problem('config', file, '--config', '', text.error.what)));
  return parseKataConfig(text.value, file);
}
