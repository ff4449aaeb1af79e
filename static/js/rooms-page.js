// The room list page's entry (templates/rooms.html): the table kept fresh, and the
// create-or-join form.

import { $ } from "./dom.js";
import { startRoomList } from "./room-list.js";
import { checkRoomNames } from "./room-name.js";

startRoomList({ table: $("room-list"), empty: $("rooms-empty"), truncated: $("rooms-truncated") });
checkRoomNames({ form: $("create-room"), input: $("room-name"), error: $("room-name-error") });
