// Names shared by the kinds that live in a /dev/shm region (their refusals
// are worded by lib/errors.ts fromNative).
import { invalidType, invalidValue } from './validate';

const NAME = /^[A-Za-z0-9._-]{1,200}$/;

export function regionPath(name: string): string {
  return `/dev/shm/${name}`;
}

export function validateName(name: unknown): string {
  if (typeof name !== 'string') throw invalidType('name', 'of type string', name);
  if (!NAME.test(name) || name === '.' || name === '..') {
    throw invalidValue('name', name, 'must be 1 to 200 characters of [A-Za-z0-9._-], not "." or ".."');
  }
  return name;
}
