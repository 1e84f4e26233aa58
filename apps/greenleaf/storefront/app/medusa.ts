// The few store API calls the storefront makes, server side: the backend is reached on the
// private network (MEDUSA_BACKEND_URL), the browser never talks to it for these pages.

export type Product = {
  id: string
  title: string
  handle: string
  description: string | null
  thumbnail: string | null
  variants: { calculated_price?: { calculated_amount: number; currency_code: string } | null }[]
}

const backend = process.env.MEDUSA_BACKEND_URL || "http://localhost:9000"

async function store<T>(path: string): Promise<T> {
  const key = process.env.MEDUSA_PUBLISHABLE_KEY
  if (!key) {
    throw new Error("MEDUSA_PUBLISHABLE_KEY is not set: the store API refuses requests without a publishable key")
  }
  const response = await fetch(`${backend}${path}`, {
    headers: { "x-publishable-api-key": key },
    cache: "no-store",
    signal: AbortSignal.timeout(10_000),
  })
  if (!response.ok) {
    throw new Error(`GET ${path}: the backend answered ${response.status}`)
  }
  return (await response.json()) as T
}

export async function listProducts(): Promise<Product[]> {
  const { regions } = await store<{ regions: { id: string }[] }>("/store/regions?limit=1")
  const region = regions[0] ? `&region_id=${encodeURIComponent(regions[0].id)}` : ""
  const { products } = await store<{ products: Product[] }>(
    `/store/products?limit=24&fields=id,title,handle,description,thumbnail,*variants.calculated_price${region}`,
  )
  return products
}

export function price(product: Product): string | null {
  const prices = product.variants.map((v) => v.calculated_price).filter((p) => p != null)
  if (!prices.length) return null
  const lowest = prices.reduce((a, b) => (b.calculated_amount < a.calculated_amount ? b : a))
  return new Intl.NumberFormat("fr-FR", { style: "currency", currency: lowest.currency_code }).format(lowest.calculated_amount)
}
