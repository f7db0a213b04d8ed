// MQTT.js against presenced (driven by test/websocket_test.go and
// test/mqttv5_test.go): connect, subscribe to a topic of our own, publish to
// it, wait for the message to come back, print "ready", then keep the
// connection until stdin closes and end it with a DISCONNECT. With protocol
// version 5 the message carries a user property that must come back, and
// "connack" prints the CONNACK properties as JSON first.
//
// usage: node client.js <ws:// or mqtt:// url> <client id> [protocol version, default 4]
'use strict'
const mqtt = require('mqtt')

const [url, clientId, version] = process.argv.slice(2)
const protocolVersion = Number(version || 4)
const topic = 'mqttjs/' + clientId
const client = mqtt.connect(url, {
  clientId,
  protocolVersion,
  clean: true,
  keepalive: 60,
  reconnectPeriod: 0,
  connectTimeout: 10000,
})

const fail = (why) => {
  console.log('error ' + why)
  process.exit(1)
}
setTimeout(() => fail('timeout'), 30000).unref()

client.on('error', (err) => fail(err.message))
const publishOptions = protocolVersion === 5
  ? { qos: 1, properties: { userProperties: { origin: 'mqtt.js' }, contentType: 'text/plain' } }
  : { qos: 1 }
client.on('connect', (connack) => {
  if (protocolVersion === 5) console.log('connack ' + JSON.stringify(connack.properties || {}))
  console.log('connected')
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) return fail('subscribe: ' + err.message)
    client.publish(topic, 'hello from mqtt.js', publishOptions)
  })
})
client.on('message', (t, payload, packet) => {
  if (t !== topic || payload.toString() !== 'hello from mqtt.js') return fail('unexpected message on ' + t)
  if (protocolVersion === 5) {
    const props = packet.properties || {}
    const user = props.userProperties || {}
    if (user.origin !== 'mqtt.js' || props.contentType !== 'text/plain') return fail('properties not forwarded: ' + JSON.stringify(props))
  }
  console.log('ready')
})
process.stdin.on('end', () => client.end(false, () => process.exit(0)))
process.stdin.resume()
