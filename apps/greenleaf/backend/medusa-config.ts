// GreenLeaf's Medusa configuration: everything comes from the environment (the .env that
// SpawnIt writes at boot, or the compose file), nothing secret is written here.
import { defineConfig, loadEnv } from "@medusajs/framework/utils"

loadEnv(process.env.NODE_ENV || "development", process.cwd())

// A setting the media provider cannot work without. (DATABASE_URL, JWT_SECRET and COOKIE_SECRET are
// read at start, not at build time: Medusa refuses to start in production without the secrets.)
function setting(name: string): string {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is not set: the media storage needs it with S3_BUCKET (see apps/greenleaf/README.md)`)
  }
  return value
}

const redisUrl = process.env.REDIS_URL

// Media on S3 or an S3-compatible service (Cloudflare R2). Uploads carry no ACL (`acl: false`,
// @medusajs/file-s3 >= 2.17): a bucket with BucketOwnerEnforced object ownership, and R2, which
// has no ACLs, refuse or ignore them; files are public through the bucket's public URL (S3_URL).
// With a key pair (R2) the provider signs with it, otherwise with the host's IAM role.
// Without a bucket (the local environment) files stay on the backend's disk, served by the backend at
// /static (Caddy routes it there) under MEDUSA_FILE_URL, the site's address + /static (the local file
// provider wants an absolute URL).
const s3Bucket = process.env.S3_BUCKET
const fileProvider = s3Bucket
  ? {
      resolve: "@medusajs/medusa/file-s3",
      id: "s3",
      options: {
        file_url: setting("S3_URL"),
        bucket: s3Bucket,
        region: process.env.S3_REGION || "auto",
        endpoint: process.env.S3_ENDPOINT || undefined,
        ...(process.env.S3_ACCESS_KEY_ID
          ? {
              authentication_method: "access-key",
              access_key_id: process.env.S3_ACCESS_KEY_ID,
              secret_access_key: setting("S3_SECRET_ACCESS_KEY"),
            }
          : { authentication_method: "s3-iam-role" }),
        acl: false,
        additional_client_config: { forcePathStyle: process.env.S3_FORCE_PATH_STYLE === "true" },
      },
    }
  : {
      resolve: "@medusajs/medusa/file-local",
      id: "local",
      options: { backend_url: process.env.MEDUSA_FILE_URL || "http://localhost/static" },
    }

// Events and long-running workflows go through Redis when it is configured, so that several
// backend instances share them; without it (a developer's laptop) Medusa keeps them in memory.
const redisModules = redisUrl
  ? [
      { resolve: "@medusajs/medusa/event-bus-redis", options: { redisUrl } },
      { resolve: "@medusajs/medusa/workflow-engine-redis", options: { redis: { url: redisUrl } } },
    ]
  : []

module.exports = defineConfig({
  projectConfig: {
    databaseUrl: process.env.DATABASE_URL,
    redisUrl,
    http: {
      // Caddy serves the storefront, the APIs and the dashboard on one origin.
      storeCors: process.env.STORE_CORS || "http://localhost",
      adminCors: process.env.ADMIN_CORS || "http://localhost",
      authCors: process.env.AUTH_CORS || "http://localhost",
      jwtSecret: process.env.JWT_SECRET,
      cookieSecret: process.env.COOKIE_SECRET,
    },
    // The dashboard's session cookie is Secure when the request came over HTTPS (X-Forwarded-Proto from
    // Caddy, which trusts the load balancer's), plain on a plain-HTTP site such as the dev box. Medusa's
    // production default (always Secure) would leave a plain-HTTP dashboard unable to keep its session.
    // (express-session takes "auto"; Medusa's type only names booleans.)
    cookieOptions: { secure: "auto" as unknown as boolean },
  },
  admin: {
    // The dashboard is built into the image and served by the backend at /app.
    disable: process.env.MEDUSA_ADMIN_DISABLED === "true",
    backendUrl: process.env.MEDUSA_BACKEND_URL || "/",
  },
  modules: [{ resolve: "@medusajs/medusa/file", options: { providers: [fileProvider] } }, ...redisModules],
})
