package pgstore

// The queries whose plans the tests check.
const (
	OnlineSQL     = onlineSQL
	OnlineManySQL = onlineManySQL
	ChannelsSQL   = channelsSQL
)
