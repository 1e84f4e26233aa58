import { dirname } from "node:path"
import { fileURLToPath } from "node:url"

const root = dirname(fileURLToPath(import.meta.url))

/** @type {import("next").NextConfig} */
const nextConfig = {
  // A self-contained server (.next/standalone/server.js) with only the modules it uses: the image's runtime stage.
  output: "standalone",
  // This folder is the project, whatever lock files its parents hold.
  outputFileTracingRoot: root,
  turbopack: { root },
  poweredByHeader: false,
}

export default nextConfig
