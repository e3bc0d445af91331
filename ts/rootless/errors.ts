// Rootless setup errors: data with a kind; the message is derived once.
import type { NativeError } from '../native.js';
import type { PathError } from '../paths.js';

export type RootlessError =
  | { readonly kind: 'rootless-not-root'; readonly euid: number; readonly message: string }
  | {
      readonly kind: 'rootless-no-executable';
      readonly paths: readonly string[];
      readonly message: string;
    }
  | {
      readonly kind: 'rootless-useradd';
      readonly name: string;
      readonly status: number | null;
      readonly message: string;
    }
  | {
      readonly kind: 'rootless-userdel';
      readonly name: string;
      readonly status: number | null;
      readonly message: string;
    }
  | { readonly kind: 'rootless-lookup'; readonly name: string; readonly message: string }
  | { readonly kind: 'rootless-kvm'; readonly device: string; readonly message: string }
  | { readonly kind: 'rootless-runtime-dir'; readonly path: string; readonly message: string }
  | PathError
  | NativeError;
