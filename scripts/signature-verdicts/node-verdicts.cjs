// Adds the verdict of the official stripe-node on each header form of forms.py's output
// (argv[2]) and writes the fixture (argv[3]). `STRIPE_NODE` is the installed package's folder.
'use strict';

const fs = require('fs');
const Stripe = require(process.env.STRIPE_NODE);
const version = require(`${process.env.STRIPE_NODE}/package.json`).version;

const table = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const stripe = new Stripe('sk_test_verdicts');

for (const form of table.forms) {
  try {
    stripe.webhooks.signature.verifyHeader(
      table.payload,
      form.header,
      table.secret,
      table.tolerance,
      undefined,
      table.now * 1000,
    );
    form.node = { accepted: true };
  } catch (error) {
    // Every exception is a refusal, whatever its class.
    const firstLine = String(error.message || '').split('\n')[0];
    form.node = { accepted: false, error: `${error.constructor.name}: ${firstLine}` };
  }
  form.libraries_agree = form.python.accepted === form.node.accepted;
}

const fixture = {
  generated_by: 'scripts/signature-verdicts.sh',
  python_stripe: table.python_stripe,
  node_stripe: version,
  secret: table.secret,
  payload: table.payload,
  now: table.now,
  tolerance: table.tolerance,
  forms: table.forms,
};
fs.writeFileSync(process.argv[3], `${JSON.stringify(fixture, null, 2)}\n`);
