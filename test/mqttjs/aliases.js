// MQTT.js receiving the Topic Aliases presenced sends (driven by
// test/mqttv5_alias_test.go): connect over MQTT 5.0 with a Topic Alias
// Maximum, subscribe to topics of our own, publish to each of them three
// times in turn, and print every message as it arrives as one JSON line
// {"topic","payload","alias"} — MQTT.js resolves an alias-only PUBLISH to
// its topic itself, and fails on an alias it was never told. "done" after
// the last one, then DISCONNECT.
//
// usage: node aliases.js <mqtt:// url> <client id>
'use strict'
const mqtt = require('mqtt')

const [url, clientId] = process.argv.slice(2)
const topics = ['mqttjs-alias/' + clientId + '/a', 'mqttjs-alias/' + clientId + '/b']
const rounds = 3
const client = mqtt.connect(url, {
  clientId,
  protocolVersion: 5,
  clean: true,
  keepalive: 60,
  reconnectPeriod: 0,
  connectTimeout: 10000,
  properties: { topicAliasMaximum: 4 },
})

const fail = (why) => {
  console.log('error ' + why)
  process.exit(1)
}
setTimeout(() => fail('timeout'), 30000).unref()

client.on('error', (err) => fail(err.message))
client.on('connect', () => {
  client.subscribe('mqttjs-alias/' + clientId + '/#', { qos: 1 }, (err) => {
    if (err) return fail('subscribe: ' + err.message)
    let n = 0
    const next = () => {
      if (n === rounds * topics.length) return
      const i = n++
      client.publish(topics[i % topics.length], String(i), { qos: 1 }, (err) => {
        if (err) return fail('publish: ' + err.message)
        next()
      })
    }
    next()
  })
})
let received = 0
client.on('message', (topic, payload, packet) => {
  const alias = (packet.properties || {}).topicAlias || 0
  console.log(JSON.stringify({ topic, payload: payload.toString(), alias }))
  if (++received === rounds * topics.length) {
    console.log('done')
    client.end(false, () => process.exit(0))
  }
})
