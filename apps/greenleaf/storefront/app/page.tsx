import { listProducts, price, type Product } from "./medusa"

// Rendered for each request: prices and stock come from the backend, not from build time.
export const dynamic = "force-dynamic"

export default async function Home() {
  let products: Product[]
  try {
    products = await listProducts()
  } catch (error) {
    console.error("catalogue unavailable:", error)
    return <p role="alert">The catalogue is unavailable right now. Please try again in a minute.</p>
  }
  if (!products.length) {
    return <p>No plants for sale yet.</p>
  }
  return (
    <ul style={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(200px, 1fr))", gap: "1rem", listStyle: "none", padding: 0 }}>
      {products.map((product) => (
        <li key={product.id} data-handle={product.handle}>
          {product.thumbnail ? <img src={product.thumbnail} alt={product.title} width={200} height={200} /> : null}
          <h2>{product.title}</h2>
          {product.description ? <p>{product.description}</p> : null}
          <p>{price(product)}</p>
        </li>
      ))}
    </ul>
  )
}
