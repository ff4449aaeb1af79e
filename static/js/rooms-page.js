// The browse page's entry (templates/rooms.html): the sidebar, the table of public rooms
// kept fresh, and the create-or-join form.

import { $ } from "./dom.js";
import { startRoomList } from "./room-list.js";
import { checkRoomNames } from "./room-name.js";
import { startSidebar } from "./sidebar.js";

startSidebar();

startRoomList({ table: $("room-list"), empty: $("rooms-empty"), truncated: $("rooms-truncated") });
checkRoomNames({ form: $("create-room"), input: $("room-name"), error: $("room-name-error") });
