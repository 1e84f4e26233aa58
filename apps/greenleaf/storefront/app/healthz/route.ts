// The container's health check: the server answers, whatever the backend's state.
export const dynamic = "force-dynamic"

export function GET() {
  return new Response("ok", { headers: { "content-type": "text/plain" } })
}
