// Seeds what a new GreenLeaf shop needs to show a product: the store's currency and sales channel,
// a region, a shipping profile, the storefront's publishable API key and one published product.
// Safe to run again: what exists is kept. Prints the publishable key (public by design: browsers
// send it) for the storefront's MEDUSA_PUBLISHABLE_KEY.
import { ExecArgs } from "@medusajs/framework/types"
import { ContainerRegistrationKeys, Modules, ProductStatus } from "@medusajs/framework/utils"
import {
  createApiKeysWorkflow,
  createProductsWorkflow,
  createRegionsWorkflow,
  createSalesChannelsWorkflow,
  createShippingProfilesWorkflow,
  linkSalesChannelsToApiKeyWorkflow,
  updateStoresWorkflow,
} from "@medusajs/medusa/core-flows"

const CHANNEL = "GreenLeaf web shop"
const KEY_TITLE = "GreenLeaf storefront"

export default async function seed({ container }: ExecArgs) {
  const logger = container.resolve(ContainerRegistrationKeys.LOGGER)
  const query = container.resolve(ContainerRegistrationKeys.QUERY)
  const stores = container.resolve(Modules.STORE)
  const channels = container.resolve(Modules.SALES_CHANNEL)
  const regions = container.resolve(Modules.REGION)
  const fulfillment = container.resolve(Modules.FULFILLMENT)
  const products = container.resolve(Modules.PRODUCT)

  let [channel] = await channels.listSalesChannels({ name: CHANNEL })
  if (!channel) {
    const { result } = await createSalesChannelsWorkflow(container).run({
      input: { salesChannelsData: [{ name: CHANNEL }] },
    })
    channel = result[0]
  }

  const [store] = await stores.listStores()
  await updateStoresWorkflow(container).run({
    input: {
      selector: { id: store.id },
      update: {
        supported_currencies: [{ currency_code: "eur", is_default: true }],
        default_sales_channel_id: channel.id,
      },
    },
  })

  if (!(await regions.listRegions({ name: "France" })).length) {
    await createRegionsWorkflow(container).run({
      input: { regions: [{ name: "France", currency_code: "eur", countries: ["fr"], payment_providers: ["pp_system_default"] }] },
    })
  }

  let [profile] = await fulfillment.listShippingProfiles({ type: "default" })
  if (!profile) {
    const { result } = await createShippingProfilesWorkflow(container).run({
      input: { data: [{ name: "Default", type: "default" }] },
    })
    profile = result[0]
  }

  const { data: keys } = await query.graph({
    entity: "api_key",
    fields: ["id", "token"],
    filters: { type: "publishable", title: KEY_TITLE },
  })
  let key: { id: string; token: string } = keys[0]
  if (!key) {
    const { result } = await createApiKeysWorkflow(container).run({
      input: { api_keys: [{ title: KEY_TITLE, type: "publishable", created_by: "seed" }] },
    })
    key = result[0]
    await linkSalesChannelsToApiKeyWorkflow(container).run({ input: { id: key.id, add: [channel.id] } })
  }

  if (!(await products.listProducts({ handle: "monstera-deliciosa" })).length) {
    await createProductsWorkflow(container).run({
      input: {
        products: [
          {
            title: "Monstera deliciosa",
            handle: "monstera-deliciosa",
            description: "A Swiss cheese plant in a 17 cm pot, grown in France.",
            status: ProductStatus.PUBLISHED,
            shipping_profile_id: profile.id,
            options: [{ title: "Pot", values: ["17 cm"] }],
            variants: [
              {
                title: "17 cm",
                sku: "MONSTERA-17",
                options: { Pot: "17 cm" },
                manage_inventory: false,
                prices: [{ amount: 29, currency_code: "eur" }],
              },
            ],
            sales_channels: [{ id: channel.id }],
          },
        ],
      },
    })
  }

  logger.info(`publishable key: ${key.token}`)
}
