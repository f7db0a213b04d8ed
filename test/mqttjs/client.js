// MQTT.js over WebSocket against presenced (driven by test/websocket_test.go):
// connect, subscribe to a topic of our own, publish to it, wait for the
// message to come back, print "ready", then keep the connection until
// stdin closes and end it with a DISCONNECT.
//
// usage: node client.js <ws url> <client id>
'use strict'
const mqtt = require('mqtt')

const [url, clientId] = process.argv.slice(2)
const topic = 'mqttjs/' + clientId
const client = mqtt.connect(url, {
  clientId,
  protocolVersion: 4,
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
client.on('connect', () => {
  console.log('connected')
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) return fail('subscribe: ' + err.message)
    client.publish(topic, 'hello from mqtt.js', { qos: 1 })
  })
})
client.on('message', (t, payload) => {
  if (t !== topic || payload.toString() !== 'hello from mqtt.js') return fail('unexpected message on ' + t)
  console.log('ready')
})
process.stdin.on('end', () => client.end(false, () => process.exit(0)))
process.stdin.resume()
