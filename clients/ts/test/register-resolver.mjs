// `node --import ./test/register-resolver.mjs`: installs resolver.mjs (see there).
import { register } from "node:module";

register("./resolver.mjs", import.meta.url);
