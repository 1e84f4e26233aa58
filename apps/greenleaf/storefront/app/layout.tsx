import type { ReactNode } from "react"

export const metadata = {
  title: "GreenLeaf",
  description: "Plants grown in France, delivered to your door.",
}

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="fr">
      <body style={{ fontFamily: "system-ui, sans-serif", margin: "0 auto", maxWidth: 960, padding: "1rem" }}>
        <header>
          <h1>GreenLeaf</h1>
        </header>
        <main>{children}</main>
      </body>
    </html>
  )
}
