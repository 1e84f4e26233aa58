// Preloaded into the node processes `npx cdktf ...` starts in this project (.npmrc node-options):
// cdktf-cli's usage telemetry is off (it would report an error on every run where
// checkpoint-api.hashicorp.com cannot be reached), and a Terraform CLI configuration variable naming
// a file that does not exist is dropped (Terraform ignores such a file, warning on every call).
process.env.CHECKPOINT_DISABLE = "1";
const configured = process.env.TF_CLI_CONFIG_FILE;
if (configured && !require("fs").existsSync(configured)) delete process.env.TF_CLI_CONFIG_FILE;
